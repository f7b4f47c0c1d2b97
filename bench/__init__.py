"""`make bench`: throughput and latency of Switchboard on this machine, next to a bare Kafka relay as the floor.

Stages (each bounded in time by bench.settings):
  floor      (a) a bare aiokafka consume→produce relay on the embedded broker: hop latency and msgs/s
  live       (b) the whole stack as processes, driven over gRPC CallControl at rising call rates,
                 with static buyers and with simulated RTB buyers
  core       (c) the pure routing core: decisions/s for a 50-buyer campaign
  simulator  (d) `switchboard simulate` calls/s on the demo config
  workers    (e) one vs two router workers at a fixed rate near the one-worker limit

Run `python -m bench` (BENCH_QUICK=1 for a short smoke run); results go to
bench/results.json and bench/results.md.
"""
