import pytest
import torch

from course_lib import check


@pytest.mark.parametrize("name", sorted(check.EXERCISES))
def test_every_reference_passes_its_own_check(name):
    result = check.verify(name, check.EXERCISES[name].reference)
    assert result.passed, result.message


def test_a_wrong_answer_reports_the_first_failing_case(capsys, monkeypatch):
    monkeypatch.delenv(check.STRICT_ENV, raising=False)

    def naive_d_loss(logits_real, logits_fake):  # unstable: log(sigmoid) overflows
        return -(torch.sigmoid(logits_real).log() + (1 - torch.sigmoid(logits_fake)).log()).mean()

    returned = check.exercise("gan.d_loss_bce", naive_d_loss)
    out = capsys.readouterr().out
    assert "case 4/4 differs" in out and "expected" in out and "got" in out
    assert returned is check.EXERCISES["gan.d_loss_bce"].reference


def test_a_stub_gets_the_reference_and_a_friendly_message(capsys, monkeypatch):
    monkeypatch.setenv(check.STRICT_ENV, "1")  # stubs are never an error, even when strict

    def stub(x):
        raise NotImplementedError("Exercise: replace this line with your solution.")

    returned = check.exercise("tour.to_unit_range", stub)
    assert returned is check.EXERCISES["tour.to_unit_range"].reference
    assert "not implemented yet" in capsys.readouterr().out


def test_a_correct_answer_is_returned(capsys):
    def mine(x):
        return torch.clamp(0.5 * x + 0.5, 0.0, 1.0)

    assert check.exercise("tour.to_unit_range", mine) is mine
    assert "3/3 cases match" in capsys.readouterr().out


def test_a_crashing_answer_is_reported_not_raised(capsys, monkeypatch):
    monkeypatch.delenv(check.STRICT_ENV, raising=False)
    check.exercise("tour.to_unit_range", lambda x: x.reshape(7))
    assert "raised RuntimeError" in capsys.readouterr().out


def test_strict_mode_raises_on_a_wrong_answer(monkeypatch):
    monkeypatch.setenv(check.STRICT_ENV, "1")
    with pytest.raises(AssertionError, match="tour.to_unit_range: case 1/3 differs"):
        check.exercise("tour.to_unit_range", lambda x: x)


def test_init_check_rejects_pytorch_default_init():
    def default_init(module):
        for m in module.modules():
            if hasattr(m, "reset_parameters"):
                m.reset_parameters()

    assert not check.verify("dcgan.init", default_init).passed


def test_discriminator_check_rejects_a_different_architecture():
    from torch import nn

    from course_lib.gan import models

    class NoBatchNorm(models.DCGANDiscriminator):
        def __init__(self, image_size, channels, width):
            super().__init__(image_size=image_size, channels=channels, width=width)
            for child in list(self.modules()):
                for child_name, grandchild in list(child.named_children()):
                    if isinstance(grandchild, nn.BatchNorm2d):
                        setattr(child, child_name, nn.Identity())

    assert not check.verify("dcgan.discriminator", NoBatchNorm).passed


def test_unknown_exercise_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown exercise 'gan.nope'"):
        check.verify("gan.nope", lambda: None)
