import pytest
import torch

from binplay.assignment import CodeBook, greedy_reference, sign_agreement
from binplay.codes import index_codes


def test_assignment_is_a_permutation_on_5000():
    codes = index_codes(range(1, 5001), bits_per_part=16, primes=[3, 5, 7, 11, 13, 17, 19, 23])
    z = torch.randn(5000, 128, generator=torch.Generator().manual_seed(0))
    book = CodeBook(codes)
    chosen = torch.cat([book.assign(z[s:s + 256]) for s in range(0, 5000, 256)])
    assert sorted(chosen.tolist()) == list(range(5000))
    assert book.free == 0


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("batch", [1, 7, 40])
@pytest.mark.parametrize("candidates", [1, 3, 16])  # 1 and 3 force the re-scoring path
def test_matches_brute_force_greedy(seed, batch, candidates):
    g = torch.Generator().manual_seed(seed)
    codes = index_codes(range(1, 41), bits_per_part=6, primes=[3, 5])
    # Clustered embeddings: many samples share a nearest code, so clashes are exercised.
    centers = codes[torch.randint(0, 40, (4,), generator=g)]
    z = centers[torch.randint(0, 4, (40,), generator=g)] + 0.3 * torch.randn(40, 12, generator=g)
    book = CodeBook(codes, candidates=candidates)
    got = torch.cat([book.assign(z[s:s + batch]) for s in range(0, 40, batch)]).tolist()
    assert got == greedy_reference(z, codes)


def test_identical_embeddings_get_distinct_codes():
    codes = index_codes(range(1, 17), bits_per_part=4, primes=[3, 5])
    chosen = CodeBook(codes).assign(torch.zeros(16, 8))
    assert sorted(chosen.tolist()) == list(range(16))


def test_refuses_more_samples_than_free_codes():
    book = CodeBook(index_codes(range(1, 5), bits_per_part=4, primes=[3]))
    book.assign(torch.randn(3, 4))
    with pytest.raises(ValueError, match="only 1 free codes"):
        book.assign(torch.randn(2, 4))


def test_sign_agreement():
    codes = index_codes(range(1, 9), bits_per_part=4, primes=[3, 5])
    assert sign_agreement(codes * 0.5, codes) == 1.0
    assert sign_agreement(-codes, codes) == 0.0
