# Generated protobuf package switchboard.v1: `make proto` rewrites the *_pb2* files; never edit them by hand.
