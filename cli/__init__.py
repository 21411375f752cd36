"""The `router-tuner` command line: one module per command, each parsing its flags, calling the packages
and printing. The top layer: it imports the product packages and none of them imports it."""
