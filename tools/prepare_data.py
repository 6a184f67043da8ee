from segkit.cli.prepare_data import main

if __name__ == "__main__":
    raise SystemExit(main())
