//! A read-only storage-texture mirror of a parameter buffer, for kernels that read
//! lane-distinct weights faster from a texture than from a storage buffer (on
//! lavapipe a `textureLoad` of an `rgba32float` storage texture is a vector gather,
//! a storage-buffer load a scalar loop over the lanes: ../shared/notes).

use super::{Gpu, MatmulVariant};

/// Texels per row of the mirror: vec4 `q` of the buffer is texel
/// `(q % PARAMS_TEX_WIDTH, q / PARAMS_TEX_WIDTH)` (the shaders' `PARAMS_TEX_WIDTH`).
pub const PARAMS_TEX_WIDTH: u32 = 1024;

/// An `rgba32float` texture holding the first `floats` floats of a storage buffer,
/// four per texel, [`PARAMS_TEX_WIDTH`] texels per row. It is a copy: whoever writes
/// the buffer records [`ParamsTexture::sync`] before the next pass that reads it.
pub struct ParamsTexture {
    texture: wgpu::Texture,
    view: wgpu::TextureView,
    texels: u32,
}

impl ParamsTexture {
    /// A mirror of a parameter buffer of `floats` floats for `gpu`, or None where no
    /// kernel would read it: devices that do not record the CPU matmul variant, and
    /// buffers taller than the device's largest 2-D texture (the buffer is read then).
    pub fn for_gpu(gpu: &Gpu, floats: usize) -> Option<ParamsTexture> {
        let rows = floats.max(1).div_ceil(4).div_ceil(PARAMS_TEX_WIDTH as usize);
        let fits = rows <= gpu.limits().max_texture_dimension_2d as usize;
        (gpu.matmul_variant() == MatmulVariant::Cpu && fits).then(|| ParamsTexture::new(gpu, floats))
    }

    /// A mirror of `floats` floats (zero-filled until the first sync).
    pub fn new(gpu: &Gpu, floats: usize) -> ParamsTexture {
        let texels = (floats.max(1).div_ceil(4)) as u32;
        let rows = texels.div_ceil(PARAMS_TEX_WIDTH);
        let width = if rows == 1 { texels } else { PARAMS_TEX_WIDTH };
        let texture = gpu.device.create_texture(&wgpu::TextureDescriptor {
            label: Some("fmpe parameter mirror"),
            size: wgpu::Extent3d { width, height: rows, depth_or_array_layers: 1 },
            mip_level_count: 1,
            sample_count: 1,
            dimension: wgpu::TextureDimension::D2,
            format: wgpu::TextureFormat::Rgba32Float,
            usage: wgpu::TextureUsages::STORAGE_BINDING | wgpu::TextureUsages::COPY_DST,
            view_formats: &[],
        });
        let view = texture.create_view(&wgpu::TextureViewDescriptor::default());
        ParamsTexture { texture, view, texels }
    }

    /// The mirror's rows as copy regions: `(first texel, y, width, height)`, the full
    /// rows in one region and a partial last row in a second.
    fn regions(&self) -> impl Iterator<Item = (u32, u32, u32, u32)> {
        let (full_rows, rest) = (self.texels / PARAMS_TEX_WIDTH, self.texels % PARAMS_TEX_WIDTH);
        let full = (full_rows > 0).then_some((0, 0, PARAMS_TEX_WIDTH, full_rows));
        let last = (rest > 0).then_some((full_rows * PARAMS_TEX_WIDTH, full_rows, rest, 1));
        full.into_iter().chain(last)
    }

    fn origin(&self, y: u32) -> wgpu::TexelCopyTextureInfo<'_> {
        wgpu::TexelCopyTextureInfo { texture: &self.texture, mip_level: 0, origin: wgpu::Origin3d { x: 0, y, z: 0 }, aspect: wgpu::TextureAspect::All }
    }

    /// The texture view bound as the matmul's binding 4.
    pub fn view(&self) -> &wgpu::TextureView {
        &self.view
    }

    /// Writes `data` (the buffer's contents, at most the mirror's floats) into the
    /// mirror from the host: a queue write, no submission.
    pub fn upload(&self, gpu: &Gpu, data: &[f32]) {
        let mut padded = data.to_vec();
        padded.resize(self.texels as usize * 4, 0.0);
        for (first, y, width, height) in self.regions() {
            let floats = &padded[first as usize * 4..(first + width * height) as usize * 4];
            gpu.queue.write_texture(
                self.origin(y),
                bytemuck::cast_slice(floats),
                wgpu::TexelCopyBufferLayout { offset: 0, bytes_per_row: Some(width * 16), rows_per_image: None },
                wgpu::Extent3d { width, height, depth_or_array_layers: 1 },
            );
        }
    }

    /// The mirror of `buffer` as it is now: records the copies in a fresh encoder and
    /// submits them (one submission).
    ///
    /// # Errors
    /// As [`Gpu::submit`].
    pub fn sync_now(&self, gpu: &Gpu, buffer: &wgpu::Buffer) -> crate::Result<()> {
        let mut enc = gpu.encoder();
        self.sync(&mut enc, buffer);
        gpu.submit(enc)
    }

    /// Records copies of `buffer`'s first floats into the mirror (outside any pass;
    /// `buffer` holds at least the mirror's floats rounded up to a whole texel).
    pub fn sync(&self, enc: &mut wgpu::CommandEncoder, buffer: &wgpu::Buffer) {
        for (first, y, width, height) in self.regions() {
            // Buffer-to-texture copies need rows 256-byte aligned: full rows are 16 KiB.
            let layout = wgpu::TexelCopyBufferLayout {
                offset: first as u64 * 16,
                bytes_per_row: Some((width * 16).next_multiple_of(256)),
                rows_per_image: None,
            };
            enc.copy_buffer_to_texture(
                wgpu::TexelCopyBufferInfo { buffer, layout },
                self.origin(y),
                wgpu::Extent3d { width, height, depth_or_array_layers: 1 },
            );
        }
    }
}
