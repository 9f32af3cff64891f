"""Matrices to run on: Matrix Market I/O (:mod:`.io`), the SuiteSparse downloader (:mod:`.download`,
imported on demand: it needs the network stack) and generated problems (:mod:`.gallery`)."""
