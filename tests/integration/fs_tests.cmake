# FUSE mount tests of dhtfs (included by tests/CMakeLists.txt): each runs
# tests/integration/<name>.sh against a real mount on real kvnodes.
dht_fs_test(fs_basic)
dht_fs_test(fs_posix)
dht_fs_test(fs_tree)
dht_fs_test(fs_multi)
dht_fs_test(fs_remount)
dht_fs_test(fs_fio)
dht_fs_test(fs_embedded)
dht_fs_test(fs_fail)

# Fault tests on mounts (label faults;integration;fs; see dht_fault_test).
dht_fault_test(fs_disk_load "integration;fs" 300)
dht_fault_test(fs_kill_loop "integration;fs" 300)
dht_fault_test(fs_freeze "integration;fs" 240)
dht_fs_test(fs_sparse)
dht_fs_test(fs_holes)
dht_fs_test(fs_copy)
dht_fs_test(fs_acl)
dht_fs_test(fs_secure)
dht_fs_test(fs_metrics)
dht_fs_test(fs_lock)
dht_fs_test(fs_patch)
