"""Speed measurements that print numbers and write JSON, each against a baseline in the same run."""
