from pathlib import Path

from telematics.settings import TelematicsSettings

README = Path(__file__).resolve().parents[2] / "README.md"


def test_readme_documents_every_telematics_setting():
    text = README.read_text()
    for name, field in TelematicsSettings.model_fields.items():
        assert f"`FLEET_{name.upper()}`" in text, name
        assert field.description
