from lightbox.cli.main import main

main()
