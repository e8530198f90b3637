"""Child process of test_atomic_checkpoint.py: writes a large checkpoint
with MMEngine's ``save_checkpoint`` (the function ``Runner.save_checkpoint``
calls) and is SIGKILLed by the test while the bytes go to disk.

Usage: python write_worker.py PATH NUM_FLOATS {atomic,plain}
``plain`` writes through MMEngine's original ``LocalBackend`` (the control
showing what the atomic backend prevents).
"""
import sys

import torch
from mmengine.fileio.backends import LocalBackend, register_backend
from mmengine.runner.checkpoint import save_checkpoint

import gpusq_mm  # noqa: F401  (installs the atomic local backend)


def main() -> None:
    path, num, mode = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    backend_args = None
    if mode == 'plain':
        register_backend('plain_local', LocalBackend, force=True)
        backend_args = dict(backend='plain_local')
    ckpt = dict(meta=dict(iter=2), state_dict=dict(w=torch.ones(num)))
    print('writing', flush=True)
    save_checkpoint(ckpt, path, backend_args=backend_args)
    print('done', flush=True)


if __name__ == '__main__':
    main()
