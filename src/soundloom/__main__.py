from soundloom.cli import main

main()
