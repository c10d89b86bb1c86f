//! The training progress bar (indicatif), drawn from the library's per-epoch progress
//! callback.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use fmpe::train::{Control, Progress};
use indicatif::{ProgressBar, ProgressStyle};

/// Seconds between progress lines without a terminal (the global `--progress-seconds`).
static LINE_SECONDS: AtomicU64 = AtomicU64::new(10);

/// Sets the seconds between progress lines without a terminal.
pub(crate) fn set_line_seconds(s: u64) {
    LINE_SECONDS.store(s, Ordering::SeqCst);
}

/// A progress bar of epochs on stderr; without a terminal (a log file, a batch job, CI)
/// a plain line after the first epoch, then at most one every `--progress-seconds`
/// (default 10), and after the last. Cleared when dropped.
pub(crate) struct EpochBar {
    bar: ProgressBar,
    last_line: Option<Instant>,
}

impl EpochBar {
    /// A bar for at most `max_epochs` epochs.
    pub(crate) fn new(max_epochs: usize) -> EpochBar {
        let bar = ProgressBar::new(max_epochs as u64);
        bar.set_style(ProgressStyle::with_template("{elapsed_precise} epoch {pos}/{len} {msg}").expect("valid template"));
        EpochBar { bar, last_line: None }
    }

    /// The progress callback: updates the bar and lets training continue.
    pub(crate) fn update(&mut self, p: &Progress<'_>) -> Control {
        let rec = p.record;
        self.bar.set_position(rec.epoch as u64);
        let due = self.last_line.is_none_or(|t| t.elapsed().as_secs() >= LINE_SECONDS.load(Ordering::SeqCst));
        if self.bar.is_hidden() && (due || p.last) {
            self.last_line = Some(Instant::now());
            log::info!(
                "epoch {:>4}/{}  train {:.4}  val {:.4}  lr {:.1e}  best epoch {}  {:.0} s",
                rec.epoch, p.max_epochs, rec.train_loss, rec.val_loss, rec.learning_rate, p.best_epoch, rec.seconds
            );
        }
        self.bar.set_message(format!(
            "train {:.4}  val {:.4}  lr {:.1e}  best epoch {}",
            rec.train_loss, rec.val_loss, rec.learning_rate, p.best_epoch
        ));
        Control::Continue
    }
}

impl Drop for EpochBar {
    fn drop(&mut self) {
        self.bar.finish_and_clear();
    }
}
