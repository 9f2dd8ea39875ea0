// A test page: ODK Web Forms (the engine and UI ODK Central serves) fills a form that
// Pollcheck serves, and posts the instance to Pollcheck's OpenRosa /submission.
import { createApp, h } from "vue";
import { OdkWebForm, webFormsPlugin } from "@getodk/web-forms";

async function start() {
  const params = new URLSearchParams(location.search);
  const key = params.get("key");
  const form = params.get("form");
  const formXml = await (await fetch(`/key/${key}/forms/${form}`)).text();
  const app = createApp({
    render: () =>
      h(OdkWebForm, {
        formXml,
        fetchFormAttachment: (url) => fetch(url),
        onSubmit: async (payload, callback) => {
          const response = await fetch(`/key/${key}/submission`, {
            method: "POST",
            body: payload.data[0],
            headers: { "X-OpenRosa-Version": "1.0" },
          });
          window.submitted = { status: response.status, body: await response.text() };
          callback();
        },
      }),
  });
  app.use(webFormsPlugin);
  app.mount("#app");
  window.started = true;
}

start().catch((error) => {
  window.failed = String(error);
});
