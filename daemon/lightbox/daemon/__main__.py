from lightbox.daemon.main import main

main()
