"""Chunking: syntax-aware chunks for every supported language, line windows, limits,
decoding and the line model."""

from __future__ import annotations

import random
import threading
from pathlib import Path

import pytest

from codeindex.chunking import (
    chunk_text,
    decode,
    heuristic_token_count,
    iter_lines,
    line_chunks,
)
from codeindex.chunking import syntax as syntax_module
from codeindex.config import Settings
from codeindex.languages import SYNTAX_LANGUAGES
from codeindex.types import Chunk


def make_settings(**overrides: int) -> Settings:
    return Settings(root=Path("."), index_dir=Path(".codeindex"), **overrides)


DEFAULT = make_settings()
# Small enough that each snippet's class no longer fits but its methods do.
TIGHT = make_settings(max_chunk_lines=6)


def assert_partition(text: str, chunks: list[Chunk]) -> None:
    """Chunks cover every non-blank line exactly once, in order, with exact text.

    Only pieces of one over-long line may share a line number; their texts concatenate
    to the line (whitespace-only pieces are dropped, so compare without whitespace).
    """
    lines = list(iter_lines(text))
    pieces: dict[int, list[str]] = {}
    covered: set[int] = set()
    previous_end = 0
    for c in chunks:
        assert 1 <= c.start_line <= c.end_line <= len(lines), c
        assert c.text.strip(), "whitespace-only chunk emitted"
        assert "\r\n" not in c.text
        expected = "\n".join(lines[c.start_line - 1 : c.end_line])
        if c.text == expected and c.start_line not in pieces:
            assert c.start_line > previous_end, f"overlap at {c}"
            covered.update(range(c.start_line, c.end_line + 1))
        else:  # a piece of an over-long line
            assert c.start_line == c.end_line, c
            assert c.start_line >= previous_end and c.start_line not in covered, c
            pieces.setdefault(c.start_line, []).append(c.text)
        previous_end = c.end_line
    for number, parts in pieces.items():
        joined = "".join(parts)
        assert "".join(joined.split()) == "".join(lines[number - 1].split())
        covered.add(number)
    missing = [n for n, line in enumerate(lines, 1) if line.strip() and n not in covered]
    assert not missing, f"lines not covered: {missing}"


def entries(chunks: list[Chunk]) -> set[tuple[str, str, int, int]]:
    return {(c.symbol, c.kind, c.start_line, c.end_line) for c in chunks}


SNIPPETS: dict[str, str] = {
    "python": r'''"""Greeting helpers."""
import os

# Says hello.
class Greeter:
    """A greeter."""

    prefix = "hi"

    def __init__(self, name):
        self.name = name

    @staticmethod
    def greet(name):
        # build the message
        return f"{Greeter.prefix} {name}"


def parse_config(path):
    with open(path) as f:
        return f.read()
''',
    "javascript": r"""import fs from "fs";

// Says hello.
export class Greeter {
  constructor(name) {
    this.name = name;
  }

  greet() {
    // build the message
    return `hi ${this.name}`;
  }
}

function parseConfig(path) {
  return fs.readFileSync(path, "utf8");
}
""",
    "typescript": r"""import * as fs from "fs";

/** Says hello. */
export class Greeter {
  private name: string;

  constructor(name: string) {
    this.name = name;
  }

  greet(): string {
    return `hi ${this.name}`;
  }
}

export function parseConfig(path: string): string {
  return fs.readFileSync(path, "utf8");
}
""",
    "tsx": r"""import React from "react";

interface Props { name: string }

export class Greeter extends React.Component<Props> {
  greet(): string {
    return `hi ${this.props.name}`;
  }

  render() {
    return <div>{this.greet()}</div>;
  }
}

export const ParseConfig = (props: Props) => {
  return <span>{props.name}</span>;
};
""",
    "go": r"""package greet

import "os"

// Greeter says hello.
type Greeter struct {
	name string
}

func (g *Greeter) Greet() string {
	return "hi " + g.name
}

func (g Greeter) Name() string {
	return g.name
}

func ParseConfig(path string) ([]byte, error) {
	return os.ReadFile(path)
}
""",
    "rust": r"""use std::fs;

/// Says hello.
#[derive(Debug)]
pub struct Greeter {
    name: String,
}

impl Greeter {
    pub fn new(name: String) -> Self {
        Greeter { name }
    }

    pub fn greet(&self) -> String {
        format!("hi {}", self.name)
    }
}

pub fn parse_config(path: &str) -> String {
    fs::read_to_string(path).unwrap()
}
""",
    "java": r"""package demo;

import java.nio.file.Files;

/** Says hello. */
public class Greeter {
    private final String name;

    public Greeter(String name) {
        this.name = name;
    }

    public String greet() {
        return "hi " + name;
    }

    static String parseConfig(String path) throws Exception {
        return Files.readString(java.nio.file.Path.of(path));
    }
}
""",
    "c": r"""#include <stdio.h>

/* A greeter. */
struct greeter {
    const char *name;
    int count;
};

static void greet(struct greeter *g) {
    printf("hi %s\n", g->name);
    g->count++;
}

int parse_config(const char *path) {
    FILE *f = fopen(path, "r");
    return f != NULL;
}
""",
    "cpp": r"""#include <string>

namespace demo {

// Says hello.
class Greeter {
public:
    explicit Greeter(std::string name) : name_(std::move(name)) {}

    std::string greet() const {
        return "hi " + name_;
    }

private:
    std::string name_;
};

int parse_config(const std::string &path) {
    return static_cast<int>(path.size());
}

}  // namespace demo
""",
    "csharp": r"""using System.IO;

namespace Demo
{
    /// <summary>Says hello.</summary>
    public class Greeter
    {
        private readonly string name;

        public Greeter(string name)
        {
            this.name = name;
        }

        public string Greet()
        {
            return "hi " + name;
        }
    }

    public static class Config
    {
        public static string ParseConfig(string path) => File.ReadAllText(path);
    }
}
""",
    "ruby": r"""require "json"

# Says hello.
class Greeter
  attr_reader :name

  def initialize(name)
    @name = name
  end

  def greet
    "hi #{@name}"
  end
end

def parse_config(path)
  JSON.parse(File.read(path))
end
""",
    "php": r"""<?php
namespace Demo;

/** Says hello. */
class Greeter {
    private string $name;

    public function __construct(string $name) {
        $this->name = $name;
    }

    public function greet(): string {
        return "hi " . $this->name;
    }
}

function parse_config(string $path): array {
    return json_decode(file_get_contents($path), true);
}
""",
    "kotlin": r"""package demo

import java.io.File

// Says hello.
class Greeter(private val name: String) {
    val prefix = "hi"

    fun greet(): String {
        return "$prefix $name"
    }

    fun shout(): String {
        return greet().uppercase()
    }
}

fun parseConfig(path: String): String {
    return File(path).readText()
}
""",
    "swift": r"""import Foundation

// Says hello.
class Greeter {
    let name: String

    init(name: String) {
        self.name = name
    }

    func greet() -> String {
        return "hi \(name)"
    }
}

func parseConfig(path: String) throws -> String {
    return try String(contentsOfFile: path)
}
""",
    "scala": r"""package demo

import scala.io.Source

// Says hello.
class Greeter(name: String) {
  val prefix = "hi"

  def greet(): String = {
    s"$prefix $name"
  }

  def shout(): String = {
    greet().toUpperCase
  }
}

def parseConfig(path: String): String = {
  Source.fromFile(path).mkString
}
""",
    "bash": r"""#!/usr/bin/env bash
set -euo pipefail

# Says hello.
greet() {
  local name="$1"
  echo "hi ${name}"
}

function parse_config {
  local path="$1"
  cat "$path"
}

greet "world"
""",
    "elixir": r'''defmodule Phoenix.Router do
  @moduledoc """
  Defines a router.
  """

  alias Phoenix.Router.Scope

  @doc "Defines a scope."
  @spec scope(String.t(), keyword) :: Macro.t()
  defmacro scope(path, opts \\ [], do: block) do
    Scope.build(path, opts, block)
  end

  # Matches a GET request.
  def get(path, plug), do: match(:get, path, plug)

  defp match(verb, path, plug) when is_atom(verb) do
    {verb, path, plug}
  end
  defp match(_verb, _path, _plug), do: :error
end

defmodule Phoenix.Router.Helpers do
  def url(path), do: "/" <> path
end
''',
    "lua": r"""-- A small encoder.
local M = {}

--- Escapes a string.
-- @param s string
local function escape(s)
  return (s:gsub('"', '\\"'))
end

function M.encode(value)
  if type(value) == "string" then
    return '"' .. escape(value) .. '"'
  end
  return tostring(value)
end

function M:reset()
  self.buffer = {}
end

M.decode = function(text)
  return load("return " .. text)()
end

local defaults = { indent = 2, sort = false }

return M
""",
    "haskell": r"""module Data.Stack
  ( Stack (..)
  , push
  ) where

import Data.List (foldl')

-- | A last-in, first-out stack.
data Stack a = Empty | Cons a (Stack a)
  deriving (Show, Eq)

-- | Push an element.
push :: a -> Stack a -> Stack a
push x s = Cons x s

-- | Number of elements.
size :: Stack a -> Int
size Empty = 0
size (Cons _ rest) = 1 + size rest

class Container f where
  empty :: f a
  toList :: f a -> [a]

instance Container Stack where
  empty = Empty

  -- | Top first.
  toList Empty = []

  toList (Cons x rest) = x : toList rest

fromList :: [a] -> Stack a
fromList = foldl' (flip push) Empty
""",
    "zig": r"""//! A tiny 2D vector module.
const std = @import("std");

/// A 2D vector.
pub const Vec2 = struct {
    x: f32,
    y: f32,

    /// Component-wise sum.
    pub fn add(self: Vec2, other: Vec2) Vec2 {
        return .{ .x = self.x + other.x, .y = self.y + other.y };
    }

    pub fn dot(self: Vec2, other: Vec2) f32 {
        return self.x * other.x + self.y * other.y;
    }
};

pub fn length(v: Vec2) f32 {
    return @sqrt(v.dot(v));
}

test "add sums components" {
    const v = Vec2{ .x = 1, .y = 2 };
    try std.testing.expectEqual(@as(f32, 2), v.add(v).x);
}
""",
}

# Per language: chunks (symbol, kind, start, end) expected with default settings (the
# class fits whole) and with TIGHT settings (the class is split into its members).
EXPECTED: dict[str, tuple[list[tuple[str, str, int, int]], list[tuple[str, str, int, int]]]] = {
    "python": (
        [("Greeter", "class", 4, 16), ("parse_config", "function", 19, 21)],
        [
            ("Greeter", "class", 4, 8),
            ("Greeter.__init__", "method", 10, 11),
            ("Greeter.greet", "method", 13, 16),  # decorator and comment included
            ("parse_config", "function", 19, 21),
        ],
    ),
    "javascript": (
        [("", "lines", 1, 1), ("Greeter", "class", 3, 13), ("parseConfig", "function", 15, 17)],
        [
            ("Greeter", "class", 3, 4),
            ("Greeter.constructor", "method", 5, 7),
            ("Greeter.greet", "method", 9, 13),  # the class's closing brace is glued on
        ],
    ),
    "typescript": (
        [("Greeter", "class", 3, 14), ("parseConfig", "function", 16, 18)],
        [
            ("Greeter", "class", 3, 5),
            ("Greeter.constructor", "method", 7, 9),
            ("Greeter.greet", "method", 11, 14),
        ],
    ),
    "tsx": (
        [
            ("Props", "interface", 3, 3),
            ("Greeter", "class", 5, 13),
            ("ParseConfig", "function", 15, 17),
        ],
        [("Greeter.greet", "method", 6, 8), ("Greeter.render", "method", 10, 13)],
    ),
    "go": (
        [
            ("Greeter", "struct", 5, 8),
            ("Greeter.Greet", "method", 10, 12),
            ("Greeter.Name", "method", 14, 16),
            ("ParseConfig", "function", 18, 20),
        ],
        [("Greeter.Greet", "method", 10, 12), ("Greeter.Name", "method", 14, 16)],
    ),
    "rust": (
        [
            ("Greeter", "struct", 3, 7),  # doc comment and attribute included
            ("Greeter", "impl", 9, 17),
            ("parse_config", "function", 19, 21),
        ],
        [
            ("Greeter", "impl", 9, 9),
            ("Greeter.new", "method", 10, 12),
            ("Greeter.greet", "method", 14, 17),
        ],
    ),
    "java": (
        [("", "lines", 1, 3), ("Greeter", "class", 5, 20)],
        [
            ("Greeter", "class", 5, 7),
            ("Greeter.Greeter", "method", 9, 11),
            ("Greeter.greet", "method", 13, 15),
            ("Greeter.parseConfig", "method", 17, 20),
        ],
    ),
    "c": (
        [
            ("greeter", "struct", 3, 7),
            ("greet", "function", 9, 12),
            ("parse_config", "function", 14, 17),
        ],
        [("greet", "function", 9, 12), ("parse_config", "function", 14, 17)],
    ),
    "cpp": (
        [
            ("", "lines", 3, 3),  # `namespace demo {`: namespaces are transparent
            ("Greeter", "class", 5, 16),
            ("parse_config", "function", 18, 20),
            ("", "lines", 22, 22),
        ],
        [
            ("Greeter", "class", 5, 7),
            ("Greeter.Greeter", "method", 8, 8),
            ("Greeter.greet", "method", 10, 12),
            ("Greeter", "class", 14, 16),
        ],
    ),
    "csharp": (
        [("", "lines", 3, 4), ("Greeter", "class", 5, 19), ("Config", "class", 21, 25)],
        [
            ("Greeter", "class", 5, 8),
            ("Greeter.Greeter", "method", 10, 13),
            ("Greeter.Greet", "method", 15, 19),
        ],
    ),
    "ruby": (
        [("Greeter", "class", 3, 14), ("parse_config", "function", 16, 18)],
        [
            ("Greeter", "class", 3, 5),
            ("Greeter.initialize", "method", 7, 9),
            ("Greeter.greet", "method", 11, 14),
        ],
    ),
    "php": (
        [("Greeter", "class", 4, 15), ("parse_config", "function", 17, 19)],
        [
            ("Greeter", "class", 4, 6),
            ("Greeter.__construct", "method", 8, 10),
            ("Greeter.greet", "method", 12, 15),
        ],
    ),
    "kotlin": (
        [("Greeter", "class", 5, 16), ("parseConfig", "function", 18, 20)],
        [
            ("Greeter", "class", 5, 7),
            ("Greeter.greet", "method", 9, 11),
            ("Greeter.shout", "method", 13, 16),
        ],
    ),
    "swift": (
        [("Greeter", "class", 3, 14), ("parseConfig", "function", 16, 18)],
        [
            ("Greeter", "class", 3, 5),
            ("Greeter.init", "method", 7, 9),
            ("Greeter.greet", "method", 11, 14),
        ],
    ),
    "scala": (
        [("Greeter", "class", 5, 16), ("parseConfig", "function", 18, 20)],
        [
            ("Greeter", "class", 5, 7),
            ("Greeter.greet", "method", 9, 11),
            ("Greeter.shout", "method", 13, 16),
        ],
    ),
    "bash": (
        [
            ("", "lines", 1, 2),
            ("greet", "function", 4, 8),
            ("parse_config", "function", 10, 13),
            ("", "lines", 15, 15),
        ],
        [("greet", "function", 4, 8), ("parse_config", "function", 10, 13)],
    ),
    "elixir": (
        [
            ("Phoenix.Router", "module", 1, 21),
            ("Phoenix.Router.Helpers", "module", 23, 25),  # its own name, not nested
        ],
        [
            ("Phoenix.Router", "module", 1, 6),  # @moduledoc and alias: named after it
            ("Phoenix.Router.scope", "macro", 8, 12),  # @doc and @spec included
            ("Phoenix.Router.get", "method", 14, 15),  # comment included
            ("Phoenix.Router.match", "method", 17, 21),  # both clauses, then `end`
        ],
    ),
    "lua": (
        [
            ("", "lines", 1, 2),
            ("escape", "function", 4, 8),  # `local function`, doc comments included
            ("M.encode", "function", 10, 15),
            ("M.reset", "function", 17, 19),  # `function M:reset()`
            ("M.decode", "function", 21, 23),  # `M.decode = function ... end`
            ("", "lines", 25, 27),  # a table is data, not a class
        ],
        [("M.encode", "function", 10, 15), ("M.decode", "function", 21, 23)],
    ),
    "haskell": (
        [
            ("", "lines", 1, 6),  # module header and imports
            ("Stack", "data", 8, 10),  # the haddock nested in the imports included
            ("push", "function", 12, 14),  # haddock and signature included
            ("size", "function", 16, 19),  # both equations in one chunk
            ("Container", "class", 21, 23),
            ("Stack", "instance", 25, 31),
            ("fromList", "function", 33, 34),  # a bind without arguments
        ],
        [
            ("Stack", "instance", 25, 25),
            ("Stack.empty", "method", 26, 26),
            ("Stack.toList", "method", 28, 31),  # equations across a blank line
        ],
    ),
    "zig": (
        [
            ("", "lines", 1, 2),
            ("Vec2", "struct", 4, 17),  # the doc comment above `pub` included
            ("length", "function", 19, 21),
            ("add sums components", "test", 23, 26),
        ],
        [
            ("Vec2", "struct", 4, 7),
            ("Vec2.add", "method", 9, 12),
            ("Vec2.dot", "method", 14, 17),  # the struct's `};` is glued on
        ],
    ),
}


def test_every_syntax_language_has_a_snippet() -> None:
    assert set(SNIPPETS) == set(SYNTAX_LANGUAGES) == set(EXPECTED)


@pytest.mark.parametrize("language", sorted(SNIPPETS))
def test_syntax_chunks_per_language(language: str) -> None:
    text = SNIPPETS[language]
    whole, split = EXPECTED[language]
    chunks = chunk_text(f"demo.{language}", text, language, DEFAULT)
    assert set(whole) <= entries(chunks), entries(chunks)
    assert all(c.language == language and c.path == f"demo.{language}" for c in chunks)
    assert_partition(text, chunks)
    tight = chunk_text(f"demo.{language}", text, language, TIGHT)
    assert set(split) <= entries(tight), entries(tight)
    assert_partition(text, tight)
    assert all(c.end_line - c.start_line < TIGHT.max_chunk_lines for c in tight)


@pytest.mark.parametrize("language", sorted(SNIPPETS))
def test_partition_holds_under_every_limit(language: str) -> None:
    """Tiny windows, short lines and a strict tokenizer: still an exact partition."""
    text = SNIPPETS[language]

    def strict(t: str) -> int:
        return len(t) // 2

    for settings, counter in [
        (make_settings(max_chunk_lines=1), None),
        (make_settings(max_chunk_lines=3, max_chunk_chars=60, max_line_chars=25), None),
        (make_settings(max_chunk_tokens=20), strict),
    ]:
        chunks = chunk_text("f", text, language, settings, counter)
        assert_partition(text, chunks)
        count = counter or heuristic_token_count
        budget = settings.max_chunk_tokens - 2
        for c in chunks:
            assert count(c.text) <= budget
            assert len(c.text) <= settings.max_chunk_chars
            assert c.end_line - c.start_line < settings.max_chunk_lines


def test_long_function_is_split_into_windows_that_keep_its_symbol() -> None:
    body = "".join(f"    total += compute_value({i}, factor={i * 3})\n" for i in range(150))
    text = f"import math\n\n\ndef big_function(x):\n    total = 0\n{body}    return total\n"
    chunks = chunk_text("big.py", text, "python", DEFAULT)
    assert_partition(text, chunks)
    mine = [c for c in chunks if c.symbol == "big_function"]
    assert len(mine) >= 3
    assert all(c.kind == "function" for c in mine)
    # Nothing truncated: the windows together are the whole function, in order.
    assert mine[0].start_line == 4 and mine[-1].end_line == 156  # def, total = 0, 150, return
    assert "\n".join(c.text for c in mine) == "\n".join(list(iter_lines(text))[3:])


def test_big_class_keeps_methods_and_names_the_rest_after_the_class() -> None:
    methods = "".join(f"    def method_{i}(self):\n        return {i}\n\n" for i in range(40))
    text = f"class Big:\n    attr = 1\n\n{methods}"
    chunks = chunk_text("big.py", text, "python", DEFAULT)
    assert_partition(text, chunks)
    symbols = {c.symbol for c in chunks}
    assert {f"Big.method_{i}" for i in range(40)} <= symbols
    assert ("Big", "class", 1, 2) in entries(chunks)


def test_token_budget_respected_with_strict_counter() -> None:
    def strict(t: str) -> int:
        return len(t) // 2

    settings = make_settings(max_chunk_tokens=40)
    dense = "x=[" + ",".join("(a,b)" for _ in range(200)) + "]"
    text = SNIPPETS["python"] + dense + "\n" + "def tail():\n    return {}\n"
    for chunks in (
        chunk_text("f.py", text, "python", settings, strict),
        list(line_chunks("f.txt", iter_lines(text), "text", settings, strict)),
    ):
        assert_partition(text, chunks)
        assert all(strict(c.text) <= 38 for c in chunks)
        assert max(strict(c.text) for c in chunks) >= 30  # packed, not one char per chunk


def test_heuristic_counter_is_conservative_and_additive() -> None:
    assert heuristic_token_count("") == 0
    assert heuristic_token_count("   \n\t") == 0
    assert heuristic_token_count("getUserName") == 3  # 4+4+3 characters
    assert heuristic_token_count("a.b(c)") == 6
    assert heuristic_token_count("日本語") == 3  # one piece per CJK character
    a, b = "def f(x): return x + 1", "    # héllo wörld"
    assert heuristic_token_count(a + "\n" + b) == heuristic_token_count(a) + heuristic_token_count(
        b
    )


def test_line_windows_respect_lines_and_chars() -> None:
    lines = [f"line {i} " + "x" * (i % 37) for i in range(500)]
    settings = make_settings(max_chunk_lines=7, max_chunk_chars=200)
    chunks = list(line_chunks("a.txt", lines, "text", settings))
    text = "\n".join(lines)
    assert_partition(text, chunks)
    assert all(c.end_line - c.start_line < 7 and len(c.text) <= 200 for c in chunks)
    assert all(c.kind == "lines" and c.symbol == "" for c in chunks)


def test_overlong_line_is_split_into_pieces_on_its_line() -> None:
    settings = make_settings(max_line_chars=100)
    minified = "var a=1;" * 100  # 800 characters
    text = f"first\n{minified}\nlast\n"
    chunks = chunk_text("bundle.min.js", text, "javascript", settings)
    assert_partition(text, chunks)
    pieces = [c for c in chunks if c.start_line == 2]
    assert len(pieces) == 8 and all(c.end_line == 2 for c in pieces)
    assert "".join(c.text for c in pieces) == minified
    whole = list(line_chunks("x", iter_lines(text), "text", settings))
    assert [c.text for c in whole if c.start_line == 2] == [c.text for c in pieces]


def test_invalid_utf8_is_replaced_and_line_numbers_stay_exact() -> None:
    data = b"def a():\n    return '\xff\xfe'\n\nx = '\xc3'\ndef b():\n    return '\xe2\x82'\n"
    text = decode(data)
    assert "\ufffd" in text
    chunks = chunk_text("bad.py", text, "python", TIGHT)
    assert_partition(text, chunks)
    assert ("a", "function", 1, 2) in entries(chunks)
    assert ("b", "function", 5, 6) in entries(chunks)


def test_multibyte_text_maps_byte_offsets_to_the_right_lines() -> None:
    text = (
        "# Ünïcödé — 日本語のコメント 🎉🎉🎉\n"
        "s = '€€€€€€€€€€€€€€€€'\n"
        "\n"
        "def größe(x):\n"
        "    return '𝄞' * x\n"
        "\n"
        "class Straße:\n"
        "    def ß(self):\n"
        "        return '日本'\n"
    )
    chunks = chunk_text("u.py", text, "python", DEFAULT)
    assert_partition(text, chunks)
    assert ("größe", "function", 4, 5) in entries(chunks)
    assert ("Straße", "class", 7, 9) in entries(chunks)


def test_bom_is_stripped() -> None:
    assert decode(b"\xef\xbb\xbfimport os\n") == "import os\n"
    assert decode(b"\xef\xbb\xbf\xef\xbb\xbfx") == "\ufeffx"  # only one BOM
    text = decode(b"\xef\xbb\xbfdef f():\n    pass\n")
    assert entries(chunk_text("f.py", text, "python", DEFAULT)) == {("f", "function", 1, 2)}


def test_crlf_line_numbers_are_exact_and_cr_is_dropped() -> None:
    text = SNIPPETS["go"].replace("\n", "\r\n")
    assert decode(text.encode()) == text  # decoding keeps line endings
    chunks = chunk_text("g.go", text, "go", DEFAULT)
    assert entries(chunks) == entries(chunk_text("g.go", SNIPPETS["go"], "go", DEFAULT))
    assert all("\r" not in c.text for c in chunks)
    assert_partition(text, chunks)


def test_line_model() -> None:
    assert list(iter_lines("")) == []
    assert list(iter_lines("a")) == ["a"]
    assert list(iter_lines("a\n")) == ["a"]
    assert list(iter_lines("a\r\nb\r\n")) == ["a", "b"]
    assert list(iter_lines("a\rb\n\n")) == ["a\rb", ""]  # a lone CR is not a break
    assert list(iter_lines("\n\nx")) == ["", "", "x"]
    assert decode(b"a\r\nb") == "a\r\nb"


def test_unknown_language_falls_back_to_line_windows() -> None:
    text = "# Title\n\nSome *markdown* text.\n" * 50
    chunks = chunk_text("README.md", text, "markdown", DEFAULT)
    assert chunks and all(c.kind == "lines" and c.symbol == "" for c in chunks)
    assert chunks == list(line_chunks("README.md", iter_lines(text), "markdown", DEFAULT))
    assert_partition(text, chunks)


def test_parser_failure_falls_back_to_line_windows(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(language: str) -> None:
        raise LookupError(f"no grammar for {language}")

    monkeypatch.setattr(syntax_module, "_parser", broken)
    text = SNIPPETS["python"]
    chunks = chunk_text("f.py", text, "python", DEFAULT)
    assert chunks == list(line_chunks("f.py", iter_lines(text), "python", DEFAULT))


def test_syntax_errors_still_partition() -> None:
    text = "def ok():\n    return 1\n\nclass Broken(:\n    def m(self\n\ndef after():\n    pass\n"
    chunks = chunk_text("e.py", text, "python", TIGHT)
    assert_partition(text, chunks)
    assert ("ok", "function", 1, 2) in entries(chunks)


@pytest.mark.parametrize("text", ["", "   ", "\n\n\n", " \t \r\n  \r\n", "\t\x0c\n\u3000\n"])
@pytest.mark.parametrize("language", ["python", "text", "rust"])
def test_empty_and_whitespace_only_files_have_no_chunks(text: str, language: str) -> None:
    assert chunk_text("e", text, language, DEFAULT) == []


def test_deterministic_and_thread_safe() -> None:
    expected = {lang: chunk_text("f", SNIPPETS[lang], lang, TIGHT) for lang in SNIPPETS}
    errors: list[str] = []

    def work(seed: int) -> None:
        order = sorted(SNIPPETS)
        random.Random(seed).shuffle(order)
        for _ in range(5):
            for lang in order:
                if chunk_text("f", SNIPPETS[lang], lang, TIGHT) != expected[lang]:
                    errors.append(lang)

    threads = [threading.Thread(target=work, args=(seed,)) for seed in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors


def test_nested_and_wrapped_definitions() -> None:
    ts = (
        "export default class Foo {\n"
        "  handler = () => {\n"
        "    return 1;\n"
        "  };\n"
        "  @dec()\n"
        "  m() {\n"
        "    return 2;\n"
        "  }\n"
        "}\n"
        "namespace NS {\n"
        "  export function inner() {\n"
        "    return 3;\n"
        "  }\n"
        "}\n"
    )
    got = entries(chunk_text("a.ts", ts, "typescript", make_settings(max_chunk_lines=4)))
    assert {
        ("Foo.handler", "method", 2, 4),
        ("Foo.m", "method", 5, 8),
        ("inner", "function", 11, 14),  # the namespace's closing brace is glued on
    } <= got
    cpp = (
        "template <typename T>\n"
        "T twice(T x) {\n"
        "  return x + x;\n"
        "}\n"
        "int Box::size() const {\n"
        "  return n;\n"
        "}\n"
    )
    got = entries(chunk_text("a.cpp", cpp, "cpp", DEFAULT))
    assert {("twice", "function", 1, 4), ("Box.size", "method", 5, 7)} <= got
    java = (
        "class Outer {\n"
        "  int a;\n"
        "  static class Inner {\n"
        "    void run() {\n"
        "      go();\n"
        "    }\n"
        "  }\n"
        "}\n"
    )
    got = entries(chunk_text("O.java", java, "java", make_settings(max_chunk_lines=3)))
    assert ("Outer.Inner.run", "method", 4, 6) in got


@pytest.mark.parametrize("language", sorted(SNIPPETS))
def test_partition_survives_mangled_source(language: str) -> None:
    """Broken code (cut lines, stray brackets, CRLF, junk) still partitions exactly."""
    rng = random.Random(language)
    base = SNIPPETS[language] * 3
    junk = ["{", "}", "(", "\r\n", "\n", "/*", '"', "'", "end", "\t", "é", "class ", "def "]
    for _ in range(15):
        chars = list(base)
        for _ in range(rng.randint(1, 12)):
            at = rng.randrange(len(chars))
            if rng.random() < 0.5:
                del chars[at : at + rng.randint(1, 30)]
            else:
                chars.insert(at, rng.choice(junk))
        text = "".join(chars)
        # Called directly: chunk_text's fallback must not hide a crash here.
        assert_partition(text, syntax_module.syntax_chunks("m", text, language, TIGHT))


def test_elixir_definitions_are_told_apart_by_the_call_target() -> None:
    text = (
        "defmodule Shop.Cart do\n"  # 1
        "  use GenServer\n"
        "  plug :fetch\n"
        "\n"
        "  @impl true\n"  # 5
        "  def init(state), do: {:ok, state}\n"
        "\n"
        "  def total(%{items: []}), do: 0\n"  # 8
        "  def total(%{items: items}) do\n"
        "    Enum.sum(items)\n"
        "  end\n"
        "  defguard is_item(x) when is_map(x)\n"  # 12
        "  def left <~> right, do: {left, right}\n"
        "end\n"
        "\n"
        "defimpl String.Chars, for: Shop.Cart do\n"  # 16
        "  def to_string(cart), do: inspect(cart)\n"
        "end\n"
        "\n"
        'IO.puts("loaded")\n'  # 20
    )
    chunks = chunk_text("cart.ex", text, "elixir", make_settings(max_chunk_lines=4))
    assert_partition(text, chunks)
    assert entries(chunks) == {
        ("Shop.Cart", "module", 1, 3),  # `use` and `plug` calls are not definitions
        ("Shop.Cart.init", "method", 5, 6),  # @impl attached
        ("Shop.Cart.total", "method", 8, 11),  # two clauses, one chunk
        ("Shop.Cart.is_item", "guard", 12, 12),
        ("Shop.Cart.<~>", "method", 13, 14),
        ("String.Chars.Shop.Cart", "impl", 16, 18),  # the module defimpl defines
        ("", "lines", 20, 20),
    }


def test_clauses_merge_only_while_they_fit_and_only_when_adjacent() -> None:
    text = (
        "f :: Int -> Int\n"  # 1
        "f 0 = 1\n"
        "g = 2\n"  # 3: another definition between: f's next equation is a new chunk
        "f n = n\n"
        "x <+> y = x\n"  # 5
        "instance Show a => Show (Tree a) where\n"
        '  show _ = "tree"\n'
        "instance Eq (Tree a) where\n"  # 8: same symbol, but not a clause
        "  _ == _ = True\n"
    )
    got = entries(chunk_text("a.hs", text, "haskell", DEFAULT))
    assert got == {
        ("f", "function", 1, 2),
        ("g", "function", 3, 3),
        ("f", "function", 4, 4),
        ("<+>", "function", 5, 5),
        ("Tree", "instance", 6, 7),  # named after its type, like a Rust impl
        ("Tree", "instance", 8, 9),
    }
    # Four three-line equations, at most seven lines a chunk: cut between equations only
    # (line windows over the whole function would cut after line 7).
    many = "".join(f"fib {i} =\n  {i}\n    + 0\n" for i in range(4))
    got = entries(chunk_text("b.hs", many, "haskell", make_settings(max_chunk_lines=7)))
    assert got == {("fib", "function", 1, 6), ("fib", "function", 7, 12)}
    # Something other than blank lines between two clauses: not one function chunk.
    ex = "def f(0), do: 1\n@limit 10\n\ndef f(n), do: n\n"
    got = entries(chunk_text("a.exs", ex, "elixir", DEFAULT))
    assert got == {("f", "function", 1, 1), ("", "lines", 2, 2), ("f", "function", 4, 4)}
    # Languages without merge_clauses keep adjacent overloads apart.
    java = "class A {\n  void f(int x) {}\n  void f(String s) {}\n}\n"
    got = entries(chunk_text("A.java", java, "java", make_settings(max_chunk_lines=3)))
    assert ("A.f", "method", 2, 2) in got and ("A.f", "method", 3, 4) in got


def test_lua_and_zig_values_that_are_not_definitions() -> None:
    lua = (
        "local a, b = 1, function() end\n"
        "local t = { f = function() return 1 end }\n"
        "local n = 5\n"
        "\n"
        "local function g() end\n"
    )
    assert entries(chunk_text("a.lua", lua, "lua", DEFAULT)) == {
        ("", "lines", 1, 3),
        ("g", "function", 5, 5),
    }
    zig = (
        "const E = error{Oops};\n"
        "const x: u8 = 5;\n"
        "const T = if (builtin.is_test) struct {} else struct {};\n"
        "\n"
        'pub extern "c" fn write(fd: i32) isize;\n'  # 5
        "const Outer = struct {\n"
        "    const Inner = union(enum) { a: u8, b: void };\n"
        "};\n"
        "\n"
        "test {\n"  # 10
        "}\n"
    )
    chunks = chunk_text("a.zig", zig, "zig", DEFAULT)
    assert_partition(zig, chunks)
    assert entries(chunks) == {
        ("", "lines", 1, 3),
        ("write", "function", 5, 5),
        ("Outer", "struct", 6, 8),
        ("", "test", 10, 11),
    }
    split = entries(chunk_text("a.zig", zig, "zig", make_settings(max_chunk_lines=2)))
    assert ("Outer.Inner", "union", 7, 8) in split


def test_new_syntax_languages_are_detected() -> None:
    from codeindex.languages import detect_language

    for path, language in [
        ("lib/router.ex", "elixir"),
        ("test/router_test.exs", "elixir"),
        ("lua/init.lua", "lua"),
        ("src/Data/Stack.hs", "haskell"),
        ("build.zig", "zig"),
    ]:
        assert detect_language(path) == language
        assert language in SYNTAX_LANGUAGES
