from cosim.cli.main import main

main()
