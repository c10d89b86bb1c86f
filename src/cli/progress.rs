//! The training progress bar (indicatif), drawn from the library's per-epoch progress
//! callback.

use fmpe::train::{Control, Progress};
use indicatif::{ProgressBar, ProgressStyle};

/// A progress bar of epochs on stderr; without a terminal (a log file, CI) a plain line
/// every 10 epochs instead. Cleared when dropped.
pub(crate) struct EpochBar {
    bar: ProgressBar,
}

impl EpochBar {
    /// A bar for at most `max_epochs` epochs.
    pub(crate) fn new(max_epochs: usize) -> EpochBar {
        let bar = ProgressBar::new(max_epochs as u64);
        bar.set_style(ProgressStyle::with_template("{elapsed_precise} epoch {pos}/{len} {msg}").expect("valid template"));
        EpochBar { bar }
    }

    /// The progress callback: updates the bar and lets training continue.
    pub(crate) fn update(&mut self, p: &Progress<'_>) -> Control {
        let rec = p.record;
        self.bar.set_position(rec.epoch as u64);
        if self.bar.is_hidden() && (rec.epoch.is_multiple_of(10) || p.last) {
            eprintln!(
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
