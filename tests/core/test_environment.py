import hashlib

from nsynth_research.core import environment as env


def test_versions_round_trip_through_their_tag():
    versions = {"keras": "3.15.1", "numpy": "2.4.6"}
    assert env.parse_versions(env.format_versions(versions)) == versions


def test_tags_name_the_installed_lock_and_real_versions(tmp_path, monkeypatch):
    (tmp_path / env.INSTALLED_LOCK).write_text("keras==3.15.1 --hash=sha256:abc\n")
    monkeypatch.setattr(env.sys, "prefix", str(tmp_path))
    tags = env.environment_tags()
    assert tags[env.LOCK_TAG] == hashlib.sha256(b"keras==3.15.1 --hash=sha256:abc\n").hexdigest()
    assert f"numpy=={env.metadata.version('numpy')}" in tags[env.VERSIONS_TAG].split()


def test_an_environment_without_a_lock_says_none(tmp_path, monkeypatch):
    monkeypatch.setattr(env.sys, "prefix", str(tmp_path))
    assert env.lock_digest() == "none"


def test_differences_name_each_changed_package_and_the_lock(tmp_path, monkeypatch):
    monkeypatch.setattr(env.sys, "prefix", str(tmp_path))
    now = env.package_versions()
    logged = {
        env.LOCK_TAG: "f" * 64,
        env.VERSIONS_TAG: env.format_versions({**now, "numpy": "0.0.1"}),
    }
    diffs = env.environment_differences(logged)
    assert diffs[0].startswith("installed from another lock file (run: ffffffffffff, now: none")
    assert diffs[1] == f"package versions differ: numpy 0.0.1 -> {now['numpy']}"


def test_the_same_environment_has_no_differences():
    assert env.environment_differences(env.environment_tags()) == []
