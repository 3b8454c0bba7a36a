from typing import Annotated, Literal

from pydantic import BaseModel, Field

from nsynth_research.config_reference import field_comments, reference, rows
from nsynth_research.doctables import Rendered, Results, render_page


class Inner(BaseModel):
    #: How many, at least one.
    count: int = Field(default=2, ge=1)
    mode: Literal["a", "b"] = "a"


class Cnn(BaseModel):
    arch: Literal["cnn"] = "cnn"
    #: Filters per block.
    filters: tuple[int, ...] = (8, 16)


class Mlp(BaseModel):
    arch: Literal["mlp"] = "mlp"
    width: int = 64


class Outer(BaseModel):
    #: The name,
    #: over two lines.
    name: str
    inner: Inner = Inner()
    model: Annotated[Cnn | Mlp, Field(discriminator="arch")] = Cnn()


def test_comments_above_fields_are_their_meaning():
    assert field_comments(Outer)["name"] == "The name, over two lines."
    assert field_comments(Inner) == {"count": "How many, at least one."}


def test_rows_walk_sections_and_union_members_with_types_bounds_defaults():
    table = {r[0]: r[1:] for r in rows(Outer)}
    assert table["`name`"] == ["str", "(required)", "The name, over two lines."]
    assert table["`inner.count`"] == ["int >= 1", "2", "How many, at least one."]
    assert table["`inner.mode`"] == ["a | b", "a", ""]
    assert table["`model.filters`"] == ["[int, ...]", "[8, 16]", "(arch: cnn) Filters per block."]
    assert table["`model.width`"] == ["int", "64", "(arch: mlp) "]


def test_pipes_in_cells_are_escaped_for_markdown():
    assert "| `inner.mode` | a \\| b | a |  |" in reference(Outer)


def test_config_markers_are_filled_and_unknown_names_reported(tmp_path):
    report = Rendered(tmp_path / "p.md")
    text = (
        "<!-- config: outer -->\nold\n<!-- /config -->\n<!-- config: nope -->\n<!-- /config -->\n"
    )
    out = render_page(text, Results(tmp_path), report, {"outer": Outer})
    assert "old" not in out and "| `inner.count` | int >= 1 |" in out
    assert report.missing == ["config nope"]
