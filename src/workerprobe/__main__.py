from workerprobe.cli import main

raise SystemExit(main())
