// The browser side of internal/sdk1test: HeyGen's SDK 1.0.16 as an app uses
// it (createStartAvatar, speak, stopAvatar), reporting what the page saw.
// Bundled by the test with esbuild into an IIFE that sets window.runSDK1,
// window.speakSDK1 and window.finishSDK1, which the test calls in turn
// (taking a screenshot between them).
import { Configuration, StreamingAvatarApi } from "@heygen/streaming-avatar";

window.runSDK1 = async (basePath, token) => {
  const t0 = performance.now();
  const at = () => Math.round(performance.now() - t0);
  const out = { steps: [], events: [], frames: 0, log: [] };
  const step = (name) => out.steps.push({ name, ms: at() });
  const api = new StreamingAvatarApi(new Configuration({ basePath, accessToken: token }));
  for (const type of ["avatar_start_talking", "avatar_stop_talking"]) {
    api.addEventHandler(type, (e) => out.events.push({ ...e, ms: at() }));
  }
  const data = await api.createStartAvatar(
    { newSessionRequest: { quality: "low", avatarName: "", voice: { voiceId: "" } } },
    (line) => out.log.push(`${at()} ${line}`),
  );
  if (!data) throw new Error("createStartAvatar failed: " + out.log.join(" | "));
  out.sessionId = data.sessionId;
  step("createStartAvatar");

  const video = document.createElement("video");
  video.muted = true;
  video.playsInline = true;
  document.body.appendChild(video);
  while (!api.mediaStream) await new Promise((r) => setTimeout(r, 10));
  out.tracks = api.mediaStream.getTracks().map((t) => t.kind).sort();
  video.srcObject = api.mediaStream;
  await video.play();
  const frames = (n) =>
    new Promise((resolve) => {
      const tick = () => {
        out.frames++;
        if (--n > 0) video.requestVideoFrameCallback(tick);
        else resolve();
      };
      video.requestVideoFrameCallback(tick);
    });
  await frames(1);
  step("first frame");
  out.width = video.videoWidth;
  out.height = video.videoHeight;
  await frames(29);
  step("30 frames");
  window.sdk1 = { api, data, out, step, video };
  return out;
};

window.speakSDK1 = async () => {
  const { api, data, out, step } = window.sdk1;
  const task = await api.speak({ taskRequest: { sessionId: data.sessionId, text: "Hello from the synthetic avatar" } });
  out.taskId = task.data && task.data.taskId;
  step("speak");
  while (out.events.length < 1) await new Promise((r) => setTimeout(r, 10));
  await new Promise((r) => setTimeout(r, 300)); // the mouth moving, for the screenshot
  return out;
};

window.finishSDK1 = async () => {
  const { api, data, out, step, video } = window.sdk1;
  while (out.events.length < 2) await new Promise((r) => setTimeout(r, 10));
  step("talking events");
  const q = video.getVideoPlaybackQuality();
  out.decoded = q.totalVideoFrames;
  out.dropped = q.droppedVideoFrames;

  await api.stopAvatar({ stopSessionRequest: { sessionId: data.sessionId } });
  step("stopAvatar");
  out.peerState = api.peerConnection ? api.peerConnection.connectionState : "none";
  return out;
};
