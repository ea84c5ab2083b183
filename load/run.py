"""`workerprobe load` from a checkout: `.venv/bin/python load/run.py --help`."""

from workerprobe.loadkit.run import main

if __name__ == "__main__":
    raise SystemExit(main())
