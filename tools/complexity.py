from segkit.cli.complexity import main

if __name__ == "__main__":
    raise SystemExit(main())
