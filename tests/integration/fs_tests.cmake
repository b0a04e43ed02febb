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
dht_fs_test(fs_sparse)
