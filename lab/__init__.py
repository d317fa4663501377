"""What measures and trains the codec: benchmarks and their reports, classical anchors, BD-rate, training, export,
the validation split, latency and load benchmarks. Nothing at run time imports it (the CLI's `bench` and `train`
load it inside the command)."""
