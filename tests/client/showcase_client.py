#!/usr/bin/env python3
"""A client written the way clients of the original ANB Rising Stars Showcase API are: `requests`,
JSON bodies, multipart uploads with `file`, `title` and `description`. It must work unchanged
against ANB Video.

    showcase_client.py BASE_URL CLIP.mp4   exits 0 when the clip was uploaded, processed, voted for
                                           and ranked
"""
import sys
import time
import uuid

import requests

base, clip = sys.argv[1].rstrip("/"), sys.argv[2]
email = f"player-{uuid.uuid4().hex[:8]}@example.com"

r = requests.post(f"{base}/api/auth/signup", json={
    "email": email, "password1": "showcase-2024", "password2": "showcase-2024",
    "first_name": "Luis", "last_name": "Díaz", "city": "Barranquilla", "country": "Colombia"})
assert r.status_code == 201, r.text
user = r.json()
assert user["email"] == email and "id" in user

r = requests.post(f"{base}/api/auth/login", json={"email": email, "password": "showcase-2024"})
assert r.status_code == 200, r.text
token = r.json()
assert token["token_type"] == "Bearer" and token["expires_in"] > 0
headers = {"Authorization": f"Bearer {token['access_token']}"}

with open(clip, "rb") as f:
    r = requests.post(f"{base}/api/videos/upload", headers=headers,
                      files={"file": ("clip.mp4", f, "video/mp4")},
                      data={"title": "Mi mejor jugada", "description": "triple sobre la bocina"})
assert r.status_code == 201, r.text
video_id = r.json()["video_id"]
assert r.json()["user_id"] == user["id"]

deadline = time.time() + 120
while True:
    r = requests.get(f"{base}/api/videos/{video_id}", headers=headers)
    assert r.status_code == 200, r.text
    video = r.json()
    if video["status"] == "completed":
        break
    assert video["status"] in ("pending", "processing"), video
    assert time.time() < deadline, video
    time.sleep(0.5)

for field in ("video_id", "title", "status", "uploaded_at", "processed_at", "original_url", "processed_url", "votes"):
    assert field in video, field
processed = requests.get(video["processed_url"])
assert processed.status_code == 200 and processed.content[4:8] == b"ftyp", processed.status_code

mine = requests.get(f"{base}/api/videos/", headers=headers).json()
assert [v["video_id"] for v in mine] == [video_id], mine

# A player cannot vote for their own clip; a fan can, once.
r = requests.post(f"{base}/api/public/videos/{video_id}/vote", headers=headers)
assert r.status_code == 400 and "detail" in r.json(), r.text
fan_email = f"fan-{uuid.uuid4().hex[:8]}@example.com"
r = requests.post(f"{base}/api/auth/signup", json={
    "email": fan_email, "password1": "showcase-2024", "password2": "showcase-2024",
    "first_name": "Ana", "last_name": "Fan", "city": "Cali", "country": "Colombia"})
assert r.status_code == 201, r.text
r = requests.post(f"{base}/api/auth/login", json={"email": fan_email, "password": "showcase-2024"})
fan = {"Authorization": f"Bearer {r.json()['access_token']}"}
r = requests.post(f"{base}/api/public/videos/{video_id}/vote", headers=fan)
assert r.status_code == 200 and r.json()["total_votes"] == 1, r.text
r = requests.post(f"{base}/api/public/videos/{video_id}/vote", headers=fan)
assert r.status_code == 400 and "detail" in r.json(), r.text

public = requests.get(f"{base}/api/public/videos", params={"page": 1, "page_size": 10}).json()
assert any(v["video_id"] == video_id and v["player_name"] == "Luis Díaz" for v in public), public
ranks = requests.get(f"{base}/api/public/rankings", params={"city": "Barranquilla"}).json()
assert ranks["rankings"][0]["username"] == "Luis Díaz" and ranks["rankings"][0]["votes"] == 1, ranks
assert ranks["total"] == 1 and ranks["total_pages"] == 1, ranks

r = requests.delete(f"{base}/api/videos/{video_id}", headers=headers)
assert r.status_code == 400, r.text  # it has a vote
print("ok")
