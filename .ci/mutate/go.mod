module dpopkit.invalid/ci/mutate

go 1.26.0
