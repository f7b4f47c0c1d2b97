"""Demo traffic: realistic calls driven through the gRPC CallControl edge, and the live terminal view."""
