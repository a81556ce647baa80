from fimls.cli import main

raise SystemExit(main())
