"""Training progress display: a bar redrawn in place in a terminal or a notebook, and
plain periodic lines in a batch log (no TTY)."""
from __future__ import annotations

import sys
import time
from typing import Callable, List, Optional


def _in_notebook() -> bool:
    shell = sys.modules.get("IPython")
    try:
        ip = shell.get_ipython() if shell else None  # type: ignore[union-attr]
    except Exception:  # pragma: no cover
        return False
    return ip is not None and type(ip).__name__ == "ZMQInteractiveShell"


class Progress:
    """Called by the engine after each epoch; returns True to stop training."""

    def __init__(self, show: bool, callback: Optional[Callable[[dict], object]], stream=None):
        self.stream = stream if stream is not None else sys.stderr
        tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.mode = "off" if not show else ("bar" if tty or _in_notebook() else "lines")
        self.callback = callback
        #: Per-epoch records of every candidate trained (model selection), in order.
        self.histories: List[list] = []
        self._last_line = 0.0
        self._closed = False

    @property
    def history(self) -> list:
        """The records of the last candidate trained."""
        return self.histories[-1] if self.histories else []

    def __call__(self, epoch, train_loss, val_loss, lr, seconds, best_epoch, max_epochs, last, candidate=0) -> bool:
        rec = {
            "epoch": epoch,
            "train_loss": train_loss,
            "val_loss": val_loss,
            "learning_rate": lr,
            "seconds": seconds,
            "best_epoch": best_epoch,
            "max_epochs": max_epochs,
            "last": last,
            "candidate": candidate,
        }
        while len(self.histories) <= candidate:
            if self.histories:
                # The next candidate of the model selection: a fresh bar.
                self.close()
                if self.mode != "off":
                    self.stream.write(f"candidate {len(self.histories) + 1} (model selection by held-out NLL)\n")
                    self.stream.flush()
                self._closed = False
            self.histories.append([])
        self.histories[candidate].append(rec)
        stop = bool(self.callback(rec)) if self.callback is not None else False
        self._show(rec, final=last or stop)
        return stop

    def _show(self, r: dict, final: bool) -> None:
        text = (
            f"epoch {r['epoch']}/{r['max_epochs']}  train {r['train_loss']:.4f}  "
            f"val {r['val_loss']:.4f}  best epoch {r['best_epoch']}  {r['seconds']:.0f} s"
        )
        if self.mode == "bar":
            width = 20
            filled = int(width * r["epoch"] / max(1, r["max_epochs"]))
            self.stream.write("\r[" + "#" * filled + "." * (width - filled) + "] " + text + "  ")
            if final:
                self.stream.write("\n")
                self._closed = True
            self.stream.flush()
        elif self.mode == "lines":
            now = time.monotonic()
            every = max(1, r["max_epochs"] // 10)
            if final or r["epoch"] == 1 or r["epoch"] % every == 0 or now - self._last_line > 30:
                self._last_line = now
                self.stream.write(text + "\n")
                self.stream.flush()

    def close(self) -> None:
        if self.mode == "bar" and self.history and not self._closed:
            self.stream.write("\n")
            self.stream.flush()
