from medxai.cli.application import main

main()
