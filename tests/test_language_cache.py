"""RuleCache (engine/language/rules.py): a load after editing one file recompiles that file only, and finds
every problem a fresh load finds."""
from __future__ import annotations

import pytest
from builders import make_config

from engine.errors import InvalidFiles
from engine.language.loading import RuleCache
from engine.language.rules import load_ruleset_text


def rule_file(n: int, title: str = "x{{ event.repo }} failed", rule_id: str | None = None) -> str:
    return (f"triggers:\n  - id: {rule_id or f'r{n}'}\n    on: build\n    match: {{status: failed, repo: acme/x{n}}}\n"
            f"    severity: low\n    title: '{title}'\n    incident_key: 'x-{{{{ event.repo }}}}'\n")


def files(count: int) -> dict[str, str]:
    return {f"rules/r{n}.yaml": rule_file(n) for n in range(count)}


def problems_of(texts: dict[str, str], load) -> list[str]:  # type: ignore[no-untyped-def]
    with pytest.raises(InvalidFiles) as caught:
        load(texts)
    return [str(p) for p in caught.value.problems]


def test_editing_one_file_of_twenty_recompiles_that_file_and_gives_a_fresh_loads_ruleset():
    cache, config = RuleCache(), make_config()
    texts = files(20)
    first = cache.load_text(texts, config)
    assert cache.compiled == 20
    texts["rules/r7.yaml"] = rule_file(7, title="seven {{ event.repo }}")
    again = cache.load_text(texts, config)
    assert cache.compiled == 1
    fresh = load_ruleset_text(texts, config)
    assert again.version == fresh.version != first.version
    assert [(r.id, r.title.source) for r in again.triggers["build"]] == \
        [(r.id, r.title.source) for r in fresh.triggers["build"]]  # type: ignore[union-attr]
    assert cache.load_text(texts, config) is not again and cache.compiled == 0


def test_a_duplicate_id_across_files_is_found_though_only_one_file_changed():
    cache, config = RuleCache(), make_config()
    texts = files(5)
    cache.load_text(texts, config)
    texts["rules/r3.yaml"] = rule_file(3, rule_id="r1")
    found = problems_of(texts, lambda t: cache.load_text(t, config))
    assert found == problems_of(texts, lambda t: load_ruleset_text(t, config))
    assert any("rules/r3.yaml" in p and "duplicate rule id (first defined at rules/r1.yaml" in p for p in found)
    assert cache.compiled == 1


def test_a_template_syntax_error_is_found_at_every_load_even_from_the_cache():
    cache, config = RuleCache(), make_config()
    texts = files(3)
    texts["rules/r2.yaml"] = rule_file(2, title="{{ event.repo ")
    expected = problems_of(texts, lambda t: load_ruleset_text(t, config))
    assert any("rules/r2.yaml" in p and "title" in p for p in expected)
    assert problems_of(texts, lambda t: cache.load_text(t, config)) == expected
    assert problems_of(texts, lambda t: cache.load_text(t, config)) == expected
    assert cache.compiled == 0


def test_changed_params_recompile_the_files_that_read_them():
    cache = RuleCache()
    texts = files(2)
    texts["rules/p.yaml"] = rule_file(9, title="{{ params.team }}")
    assert any("param" in p and "team" in p for p in problems_of(texts, lambda t: cache.load_text(t, make_config())))
    ruleset = cache.load_text(texts, make_config("params:\n  team: core\n"))
    assert cache.compiled == 3 and ruleset.params["team"] == "core"


def test_a_removed_file_is_forgotten():
    cache, config = RuleCache(), make_config()
    texts = files(3)
    cache.load_text(texts, config)
    del texts["rules/r1.yaml"]
    ruleset = cache.load_text(texts, config)
    assert [r.id for r in ruleset.triggers["build"]] == ["r0", "r2"]
    texts["rules/r1.yaml"] = rule_file(1)
    cache.load_text(texts, config)
    assert cache.compiled == 1


def test_the_file_loader_recompiles_only_the_edited_file(tmp_path):  # type: ignore[no-untyped-def]
    for name, text in files(4).items():
        (tmp_path / name.split("/")[1]).write_text(text)
    cache, config = RuleCache(), make_config(rules_dir=str(tmp_path))
    cache.load(config)
    assert cache.compiled == 4
    (tmp_path / "r2.yaml").write_text(rule_file(2, title="two {{ event.repo }}"))
    ruleset = cache.load(config)
    assert cache.compiled == 1
    assert [r.title.source for r in ruleset.triggers["build"]][2] == "two {{ event.repo }}"  # type: ignore[union-attr]


def test_the_cache_is_stale_once_a_file_is_edited_added_removed_or_unreadable(tmp_path):  # type: ignore[no-untyped-def]
    """What a daemon asks once it observes the folder: an edit since its load (by content, not by time)."""
    for name, text in files(2).items():
        (tmp_path / name.split("/")[1]).write_text(text)
    cache, config = RuleCache(), make_config(rules_dir=str(tmp_path))
    cache.load(config)
    assert not cache.stale(config)
    (tmp_path / "r1.yaml").write_text((tmp_path / "r1.yaml").read_text())  # written again, the same text
    assert not cache.stale(config)
    (tmp_path / "r1.yaml").write_text(rule_file(1, title="one {{ event.repo }}"))
    assert cache.stale(config)
    cache.load(config)
    (tmp_path / "r2.yaml").write_text(rule_file(2))
    assert cache.stale(config)
    cache.load(config)
    (tmp_path / "r0.yaml").unlink()
    assert cache.stale(config)
    cache.load(config)
    (tmp_path / "r1.yaml").write_bytes(b"triggers: []\n# caf\xe9\n")
    assert cache.stale(config)


def test_a_template_compiled_lazily_still_gives_the_sandboxs_error_and_answer():
    from engine.language.templates import Scope, compile_template
    compiled = compile_template("{{ event.repo | slug }}")
    assert compiled.render(Scope({"event": {"repo": "Acme/X"}, "params": {}})) == "Acme-X"
    with pytest.raises(Exception, match="repo"):  # no fast answer: Jinja's template is made now, and says why
        compiled.render(Scope({"event": {}, "params": {}}))
