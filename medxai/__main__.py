from medxai.cli import main

main()
