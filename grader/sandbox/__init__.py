"""The sandbox's parent end, on the trusted side: how student code is isolated (`isolation`),
the zygote that runs it and the bounded reading of each probe's one result (`runner`), and the
submission's files, read without following links (`files`)."""
