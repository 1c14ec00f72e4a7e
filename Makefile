# Shortcuts for the commands in README.md and notebooks/README.md.
#   make test              the whole test suite
#   make notebooks         execute every notebook in place (regenerates the committed outputs)
#   make notebooks-check   execute every notebook into a temporary directory (what CI runs)
# NB=name runs only some notebooks: make notebooks NB="02-token-tables 03-norms"
NB ?=

.PHONY: test notebooks notebooks-check

test:
	cargo test --release --workspace

notebooks:
	notebooks/run.sh $(NB)

notebooks-check:
	notebooks/run.sh --check $(NB)
