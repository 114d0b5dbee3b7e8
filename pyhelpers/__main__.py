from pyhelpers.cli import main

main()
