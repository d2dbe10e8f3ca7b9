"""The network-emulator sidecar: topology, pure link logic, gRPC servicers and a control client."""
