# lightbox — the two commands a newcomer needs are `make run` and `make test`.
# Needs only Python >= 3.11 (with venv) and make; everything else goes into .venv.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
ROOT   ?= $(HOME)/Pictures
DEMO_DIR ?= $(HOME)/.local/share/lightbox-demo
PIP    := $(BIN)/python -m pip --disable-pip-version-check -q
# Where `make run` links the `lightbox` command, so a new shell finds it.
BIN_DIR ?= $(HOME)/.local/bin

.PHONY: help run demo link test lint docs bench install-user-service stop clean

help:
	@echo "make run [ROOT=/path/to/photos]  set up, start the daemon on your photos, open the TUI"
	@echo "make demo                        the same on a generated sample library"
	@echo "make link                        put lightbox and lightboxd on PATH ($(BIN_DIR))"
	@echo "make test                        set up and run the whole test suite"
	@echo "make lint                        ruff and mypy"
	@echo "make docs                        regenerate the reference in docs/protocol.md"
	@echo "make bench                       run the benchmarks (figures in docs/benchmarks.md)"
	@echo "make install-user-service        install and start the systemd user unit"
	@echo "make stop                        stop the daemon started by make run"

$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else \
	  "lightbox needs Python 3.11 or newer; this is " + sys.version.split()[0] + \
	  " (use make PYTHON=python3.12 ...)")'
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --upgrade "pip>=23"

# Runtime install (with HEIC support); re-run when pyproject.toml changes.
$(VENV)/.installed-run: pyproject.toml | $(BIN)/python
	$(PIP) install -e '.[heic]'
	@touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(PIP) install -e '.[dev]'
	@touch $@ $(VENV)/.installed-run

# A link, not a copy: the venv's script knows its interpreter. An existing file that is not
# a link is someone else's command and is left alone.
link: $(VENV)/.installed-run
	@mkdir -p "$(BIN_DIR)"
	@for cmd in lightbox lightboxd; do \
	  target="$(abspath $(BIN))/$$cmd"; dest="$(BIN_DIR)/$$cmd"; \
	  if [ -e "$$dest" ] && [ ! -L "$$dest" ]; then \
	    echo "lightbox: $$dest exists and is not a link; left alone (use $$target)"; \
	  elif [ "$$(readlink "$$dest")" != "$$target" ]; then \
	    ln -sfn "$$target" "$$dest" && echo "linked $$dest -> $$target"; fi; \
	done
	@case ":$$PATH:" in *":$(BIN_DIR):"*) ;; *) \
	  echo "lightbox: $(BIN_DIR) is not on your PATH, so a new shell will not find"; \
	  echo "  lightbox there. Add it (for bash: echo 'export PATH=\"$(BIN_DIR):\$$PATH\"' >> ~/.bashrc)"; \
	  echo "  or run $(abspath $(BIN))/lightbox";; esac

run: link
	@if [ ! -d "$(ROOT)" ]; then \
	  echo "lightbox: there is no photo folder at $(ROOT)."; \
	  echo "  Name yours:        make run ROOT=/path/to/photos"; \
	  echo "  Or try it first:   make demo   (a generated sample library)"; \
	  exit 1; fi
	@$(BIN)/lightbox start
	@$(BIN)/lightbox roots add "$(ROOT)" --if-missing
	@$(BIN)/lightbox
	@echo "The daemon keeps running in the background (lightbox status; make stop to stop it)."

demo: link
	@[ -d "$(DEMO_DIR)/photos" ] || $(BIN)/python -m lightbox.daemon.media.samples "$(DEMO_DIR)/photos"
	@# The daemon's own dir beside the photos, not around them: a root may not hold the
	@# daemon's data (roots.add refuses it).
	@$(BIN)/lightbox --data-dir "$(DEMO_DIR)/daemon" start
	@$(BIN)/lightbox --data-dir "$(DEMO_DIR)/daemon" roots add "$(DEMO_DIR)/photos" --if-missing
	@$(BIN)/lightbox --data-dir "$(DEMO_DIR)/daemon"
	@echo "The demo daemon keeps running: lightbox --data-dir $(DEMO_DIR)/daemon stop"

stop: $(VENV)/.installed-run
	@$(BIN)/lightbox stop

# Two workers (TEST_JOBS=0: no workers, in the one pytest process); a module's tests stay together, and every TUI
# module in one worker (tests/conftest.py). Arguments after `make test ARGS=...`.
TEST_JOBS ?= 2
test: $(VENV)/.installed-dev
	$(BIN)/pytest -n $(TEST_JOBS) --dist loadgroup $(ARGS)

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check .
	$(BIN)/mypy

docs: $(VENV)/.installed-run
	$(BIN)/python -m lightbox.common.api.reference docs/protocol.md README.md

bench: $(VENV)/.installed-dev
	$(BIN)/python benchmarks/run_all.py

install-user-service: $(VENV)/.installed-run
	mkdir -p $(HOME)/.config/systemd/user
	sed "s|^ExecStart=.*|ExecStart=$(abspath $(BIN))/lightboxd|" systemd/lightboxd.user.service \
	  > $(HOME)/.config/systemd/user/lightboxd.service
	systemctl --user daemon-reload
	systemctl --user enable --now lightboxd
	@echo "installed; logs: journalctl --user -u lightboxd -f"

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis
