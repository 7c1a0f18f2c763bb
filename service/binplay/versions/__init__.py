"""A versioned state that separate jobs extend (jobs.learn), evaluate, predict and regenerate from.

Layout of a state location (a local directory or any pyarrow filesystem URI, s3:// included):

    LATEST                     the pointer: {"format_version", "version"}; replaced last
    lock.json                  held by the one learn that may publish (lock.py)
    versions/v0003/state.pt    weights + ledger at a task boundary (torch.load weights_only)
    versions/v0003/ledger.json per task: id, index range, classes, data fingerprint, config,
                               metrics at the time
    versions/v0003/manifest.json  format version, parent, the files with sizes and SHA-256
    staging/v0004/             the learn in flight: its task's shards and checkpoints; removed
                               once v0004 is published

Nothing per sample is kept: a version's size depends on the models and the number of tasks.
"""
