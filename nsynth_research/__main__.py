from nsynth_research.cli import main

raise SystemExit(main())
