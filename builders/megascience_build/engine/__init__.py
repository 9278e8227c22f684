"""The build engine: records, the stage contract, executors, the request cache, manifests."""
