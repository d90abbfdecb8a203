"""Live tests: real LVM 2.02 commands against pylvmetad and the C lvmetad."""
