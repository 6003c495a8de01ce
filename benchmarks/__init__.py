"""Speed and memory benchmarks of the dataset build; results in benchmarks/RESULTS.md."""
