"""Converters from official split files (tiny hand-written files in the official formats) to manifests."""

import json

import pytest

from vmp_jax.data import manifest, splits


def _w(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_ucf101_round_trip_through_manifest(tmp_path):
    a = tmp_path / "ucfTrainTestlist"
    _w(a / "classInd.txt", "1 ApplyEyeMakeup\n2 Archery\n")
    _w(a / "trainlist01.txt", "ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi 1\nArchery/v_Archery_g08_c01.avi 2\n")
    _w(a / "testlist01.txt", "Archery/v_Archery_g01_c01.avi\n")
    names, s = splits.ucf101(str(a), 1)
    assert names == ["ApplyEyeMakeup", "Archery"]
    assert s["train"] == [("ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi", 0), ("Archery/v_Archery_g08_c01.avi", 1)]
    assert s["test"] == [("Archery/v_Archery_g01_c01.avi", 1)]
    splits.write(str(tmp_path / "out"), names, s)
    records, _ = manifest.read_manifest(
        str(tmp_path / "out/test.csv"), manifest.read_class_names(str(tmp_path / "out/classes.txt")), video_root="/v"
    )
    assert records[0].path == "/v/Archery/v_Archery_g01_c01.avi" and records[0].label == 1
    _w(a / "trainlist02.txt", "Archery/v_Archery_g08_c01.avi 1\n")
    _w(a / "testlist02.txt", "Archery/v_Archery_g01_c01.avi\n")
    with pytest.raises(ValueError, match=r"trainlist02.txt:1: label 1 disagrees"):
        splits.ucf101(str(a), 2)


def test_hmdb51(tmp_path):
    a = tmp_path / "splits"
    _w(a / "brush_hair_test_split1.txt", "a.avi 1\nb.avi 2\nc.avi 0\n")
    _w(a / "cartwheel_test_split1.txt", "d.avi 2\n")
    names, s = splits.hmdb51(str(a), 1)
    assert names == ["brush_hair", "cartwheel"]
    assert s == {"train": [("brush_hair/a.avi", 0)], "test": [("brush_hair/b.avi", 0), ("cartwheel/d.avi", 1)]}
    _w(a / "cartwheel_test_split2.txt", "d.avi 3\n")
    with pytest.raises(ValueError, match=r"cartwheel_test_split2.txt:1"):
        splits.hmdb51(str(a), 2)


def test_finegym_precut_and_json_windows(tmp_path):
    a = tmp_path / "gym"
    _w(
        a / "gym99_categories.txt",
        "".join(f"Clabel: {i}; set: 1; Glabel: {i + 3}; (VT) element {i}\n" for i in range(99)),
    )
    _w(a / "gym99_train_element_v1.1.txt", "vid1_E_000100_000130_A_0003_0005 7\n")
    _w(a / "gym99_val_element.txt", "vid1_E_000100_000130_A_0010_0012 98\n")
    names, s = splits.finegym(str(a), 99)
    assert len(names) == 99 and names[7] == "(VT) element 7"
    assert s["train"] == [("vid1_E_000100_000130_A_0003_0005.mp4", 7)]
    info = {
        "vid1": {
            "E_000100_000130": {
                "event": 1,
                "timestamps": [[100.5, 130.2]],
                "segments": {
                    "A_0003_0005": {"stages": 1, "timestamps": [[3.1, 5.2]]},
                    "A_0010_0012": {"stages": 3, "timestamps": [[10.0, 10.5], [10.5, 11.0], [11.0, 12.25]]},
                },
            }
        }
    }
    j = _w(tmp_path / "ann.json", json.dumps(info))
    names, s = splits.finegym(str(a), 99, str(j), ".mkv")
    assert s["train"] == [("vid1.mkv", 7, 103.6, 105.7)]
    assert s["test"] == [("vid1.mkv", 98, 110.5, 112.75)]
    _w(a / "gym99_val_element.txt", "vid2_E_000100_000130_A_0010_0012 98\n")
    with pytest.raises(ValueError, match=r"gym99_val_element.txt:1: vid2_E.* not found"):
        splits.finegym(str(a), 99, str(j))


def test_mpii_cooking2(tmp_path):
    gt = _w(
        tmp_path / "gt.csv",
        "subject,file_name,start_frame,end_frame,activity_id\n"
        "8,s08-d01-cam-002,294,588,5\n1,s01-d02-cam-002,0,147,9\n2,s02-d03-cam-002,10,20,3\n",
    )
    cls = _w(tmp_path / "classes67.txt", "5 cut slices\n9 peel\n")
    names, s = splits.mpii_cooking2(str(gt), str(cls), [8, 10])
    assert names == ["cut slices", "peel"]
    assert s["test"] == [("s08-d01-cam-002.avi", 0, 10.0, 20.0)]
    assert s["train"] == [("s01-d02-cam-002.avi", 1, 0.0, 5.0)]  # activity 3 is not a kept class: dropped
    _w(tmp_path / "bad.csv", "1,x,10,5,5\n")
    with pytest.raises(ValueError, match=r"bad.csv:1: end_frame"):
        splits.mpii_cooking2(str(tmp_path / "bad.csv"), str(cls), [8])


def test_mpii_cooking2_official_split(tmp_path):
    gt = _w(
        tmp_path / "gt.csv",
        "subject,file_name,start_frame,end_frame,activity_id\n"
        "8,s08-d01-cam-002,294,588,5\n8,s08-d01-cam-001,294,588,5\n"
        "1,s01-d02-cam-002,0,147,9\n2,s02-d03-cam-002,10,20,9\n3,s03-d04-cam-002,0,30,5\n",
    )
    cls = _w(tmp_path / "classes67.txt", "9 peel\n5 cut slices\n")
    setup = tmp_path / "experimentalSetup"
    setup.mkdir()
    _w(setup / "sequencesTrainAttr.txt", "s01-d02 x\ns08-d01\n")
    _w(setup / "sequencesVal.txt", "s02-d03\n")
    _w(setup / "sequencesTest.txt", "s09-d09\n")
    names, s = splits.mpii_cooking2_official(str(gt), str(cls), str(setup))
    assert names == ["cut slices", "peel"]  # sorted names, not the classes file's order
    # cam-001 and the sequence in no list (s03-d04) are left out
    assert s == {
        "train": [("s08-d01-cam-002.avi", 0, 10.0, 20.0), ("s01-d02-cam-002.avi", 1, 0.0, 5.0)],
        "val": [("s02-d03-cam-002.avi", 1, 0.34, 0.68)],
        "test": [],
    }
