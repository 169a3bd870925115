"""`python -m llm_economist`: the `llm-economist` command, for environments without its script on PATH."""

from .cli import main

if __name__ == "__main__":
    main()
