from fmnist_edge.app import main

main()

