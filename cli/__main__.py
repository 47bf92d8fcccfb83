from fmnist_edge.main import main

main()
