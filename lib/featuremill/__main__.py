from featuremill.cli import main

raise SystemExit(main())
