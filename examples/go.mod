module github.com/dpopkit/dpop/examples

go 1.26

replace github.com/dpopkit/dpop => ../
