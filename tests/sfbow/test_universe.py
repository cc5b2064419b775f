import numpy as np
import pytest

from sfbow.universe import STRATEGIES, build_universe

RNG = np.random.default_rng(1)
WORDS = RNG.standard_normal((500, 6)).astype(np.float32)


@pytest.mark.parametrize(("strategy", "k", "rows"), [
    ("identity", None, 6), ("gaussian", 20, 20), ("frequent", 7, 7), ("kmeans", 5, 5), ("pca", 12, 12), ("pca", 5, 5),
])
def test_each_strategy_returns_a_finite_float32_k_by_d_matrix(strategy, k, rows):
    universe = build_universe(strategy, WORDS, k=k)
    assert universe.shape == (rows, 6) and universe.dtype == np.float32
    assert np.isfinite(universe).all()


def test_strategies_are_what_they_claim():
    np.testing.assert_array_equal(build_universe("identity", WORDS), np.eye(6))
    np.testing.assert_array_equal(build_universe("frequent", WORDS, k=3), WORDS[:3])
    pca = build_universe("pca", WORDS, k=12)
    np.testing.assert_allclose(pca[0::2], -pca[1::2])  # both signs of each direction
    np.testing.assert_allclose(pca[0::2] @ pca[0::2].T, np.eye(6), atol=1e-5)  # orthonormal directions
    top = np.linalg.svd(WORDS - WORDS.mean(0))[2][0]
    assert abs(abs(float(pca[0] @ top)) - 1) < 1e-5  # the first is the top principal direction
    centroids = build_universe("kmeans", WORDS, k=4)
    assert len(np.unique(centroids.round(4), axis=0)) == 4


def test_random_strategies_are_seeded():
    for name in ("gaussian", "kmeans"):
        a = build_universe(name, WORDS, k=4, random_state=3)
        np.testing.assert_array_equal(a, build_universe(name, WORDS, k=4, random_state=3))
        assert not np.array_equal(a, build_universe(name, WORDS, k=4, random_state=4))


def test_n_words_limits_the_words_fitted_on():
    np.testing.assert_array_equal(build_universe("pca", WORDS, n_words=50), build_universe("pca", WORDS[:50]))


def test_user_supplied_matrix_is_used_as_given():
    matrix = RNG.standard_normal((3, 6))
    np.testing.assert_array_equal(build_universe(matrix, WORDS), matrix.astype(np.float32))


@pytest.mark.parametrize(("strategy", "kwargs", "error", "message"), [
    ("nope", {}, ValueError, "unknown universe strategy 'nope'"),
    ("gaussian", {"k": 0}, ValueError, "k must be an int >= 1"),
    ("gaussian", {"k": -3}, ValueError, "k must be an int >= 1"),
    ("gaussian", {"k": 2.5}, TypeError, "k must be an int"),
    ("identity", {"k": 5}, ValueError, "K = d = 6"),
    ("pca", {"k": 13}, ValueError, "at most 2 d = 12"),
    ("frequent", {"k": 501}, ValueError, "exceeds the 500 words"),
    (np.ones((3, 5)), {}, ValueError, "d = 6"),
    (np.ones((0, 6)), {}, ValueError, "K >= 1"),
    (np.full((2, 6), np.nan), {}, ValueError, "universe has NaN or inf"),
])
def test_bad_universes_are_rejected(strategy, kwargs, error, message):
    with pytest.raises(error, match=message):
        build_universe(strategy, WORDS, **kwargs)


def test_registry_lists_all_strategies():
    assert set(STRATEGIES) == {"identity", "gaussian", "frequent", "kmeans", "pca"}


def test_pca_needs_enough_words_for_its_directions():
    with pytest.raises(ValueError, match="needs 6 principal directions, but 3 words give at most 2"):
        build_universe("pca", WORDS, n_words=3)
    assert build_universe("pca", WORDS, k=4, n_words=3).shape == (4, 6)


def test_k_with_a_user_matrix_and_bad_seeds_are_errors():
    with pytest.raises(ValueError, match="k applies to the named strategies"):
        build_universe(np.ones((3, 6)), WORDS, k=2)
    with pytest.raises(TypeError, match="random_state must be a non-negative integer"):
        build_universe("gaussian", WORDS, k=3, random_state="seed")


def test_a_universe_too_large_for_memory_is_refused_before_it_is_drawn():
    with pytest.raises(ValueError, match="a gaussian universe of k=1000000000000 rows x d=6 would need .* lower k"):
        build_universe("gaussian", WORDS, k=10**12)


def test_universe_files_round_trip_and_bad_ones_name_the_file(tmp_path):
    from sfbow.universe import read_universe_file

    matrix = RNG.standard_normal((4, 6)).astype(np.float32)
    np.save(tmp_path / "u.npy", matrix)
    np.testing.assert_array_equal(read_universe_file(tmp_path / "u.npy"), matrix)
    np.save(tmp_path / "fortran.npy", np.asfortranarray(matrix))
    np.testing.assert_array_equal(read_universe_file(tmp_path / "fortran.npy"), matrix)
    data = (tmp_path / "u.npy").read_bytes()
    bad = {
        "truncated.npy": data[:-5],
        "header.npy": data.replace(b"(4, 6)", b"(10000000000, 6)"),
        "text.npy": b"hello",
        "objects.npy": data.replace(b"'<f4'", b"'|O' "),
        "vector.npy": data.replace(b"(4, 6)", b"(24,)  "),
    }
    for name, content in bad.items():
        (tmp_path / name).write_bytes(content)
        with pytest.raises(ValueError, match=name):
            read_universe_file(tmp_path / name)
    for size in range(len(data)):  # every truncation
        (tmp_path / "cut.npy").write_bytes(data[:size])
        with pytest.raises(ValueError, match="cut.npy"):
            read_universe_file(tmp_path / "cut.npy")


def test_check_universe_refuses_complex_and_out_of_range_values():
    from sfbow.universe import check_universe

    with pytest.raises(TypeError, match="universe is complex"):
        check_universe(np.ones((2, 6)) * 1j, 6)
    with pytest.raises(ValueError, match="beyond the float32 range"):
        check_universe(np.full((2, 6), 1e39), 6)
