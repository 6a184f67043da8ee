from segkit.cli.zoo import main

if __name__ == "__main__":
    raise SystemExit(main())
