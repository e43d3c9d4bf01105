"""The ``neural-sorter`` console script. It installs the Ctrl-C handler before anything heavy is imported, so
an interrupt while the command starts (imports, option checks: nothing changed yet) ends in one line and
exit status 130 instead of a traceback from deep inside an import."""

import os
import signal
import sys


def _interrupted_while_starting(_signum, _frame) -> None:
    sys.stderr.write("neural-sorter: error: interrupted\n")
    sys.stderr.flush()
    os._exit(130)


def main() -> None:
    signal.signal(signal.SIGINT, _interrupted_while_starting)
    from neural_sorter.cli import main as cli_main

    sys.exit(cli_main())
