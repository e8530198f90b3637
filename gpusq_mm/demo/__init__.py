"""The embedded demo (``make demo``): tasks, tool runner, deploy step and
report. Used by ``tools/demo.py``."""
from .tasks import TASKS, DemoTask, select

__all__ = ['TASKS', 'DemoTask', 'select']
