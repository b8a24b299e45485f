# Ayna Deployment Standard v2.0 ("Required Makefile Targets"): the one command
# interface for operating a stack. This file only dispatches; the commands are
# in scripts/ops.ts. Usage: make help.
#
#   make status STACK=staging [CONFIG_FILE=FILE] [HOST=NAME]

SHELL := /bin/bash
ROOT := $(patsubst %/,%,$(dir $(realpath $(firstword $(MAKEFILE_LIST)))))
TSC := $(ROOT)/node_modules/typescript/bin/tsc

TARGETS := deploy preview rollback migrate shell backup restore logs start stop restart status validate

# Shells set HOST (the machine's name) and LINES (the terminal's height) on
# their own: only values given on make's command line count for those two.
ifneq ($(origin HOST),command line)
HOST :=
endif
ifneq ($(origin LINES),command line)
LINES :=
endif

# Values reach scripts/ops.ts through the environment, never spliced into a
# command line; CONFIG_FILE is relative to where make was run.
export STACK CONFIG_FILE HOST YES TO LINES FOLLOW FILE INTO
export AYNA_OPS_ROOT := $(ROOT)
export AYNA_OPS_CALLER_DIR := $(CURDIR)
export AYNA_OPS_TSC := $(TSC)

.DEFAULT_GOAL := help
.PHONY: $(TARGETS) help

$(TARGETS) help:
	@cd "$$AYNA_OPS_ROOT" && \
	  { [ -f "$$AYNA_OPS_TSC" ] || { echo "make $@: node_modules is missing; run npm ci first" >&2; exit 2; }; } && \
	  . scripts/lib.sh && use_toolchain && \
	  exec node scripts/compiled.js scripts/ops.ts $@
