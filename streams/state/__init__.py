"""The state log: incremental, epoch-committed checkpoints of room partitions.

Knows nothing of rooms or Kafka: it writes and reads JSON pieces through a small log
interface (`log.py`: aiokafka and an in-memory fake). See `records.py` for the format
and its failure semantics.
"""
